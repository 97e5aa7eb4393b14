"""Audio analysis: per-clip statistics (``features``), torch log-mel (``logmel``), dataset extraction (``extract``)."""
