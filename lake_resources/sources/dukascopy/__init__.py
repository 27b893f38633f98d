"""Dukascopy: the BI5 datafeed (HTTP mirror, local directory, S3) and the JSON data API, their codecs,
the day-level ingest functions, the vendor's own candles and the instrument sync."""
