"""dramatiq middleware, one file each."""
