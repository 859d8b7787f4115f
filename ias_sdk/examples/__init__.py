"""Example Internet Application Services built on the IAS SDK."""
