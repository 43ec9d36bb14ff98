"""Generated faces, image decoding, data sources and public sets, quality checks, splits, and model-ready batches."""
