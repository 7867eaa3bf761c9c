"""The wire protocols: each a codec (request -> batch, result -> answer) for pipeline.py."""
