"""ias_sdk."""
