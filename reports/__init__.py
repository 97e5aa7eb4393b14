"""Static HTML reports, the leaderboard and threshold checks."""
