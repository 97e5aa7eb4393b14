"""The synthetic album world: covers and music with a planted, known coupling, for tests and the demo."""
