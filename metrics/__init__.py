"""Metrics over arrays: image quality (FID, KID, PR/DC) and whether the conditioning works."""
