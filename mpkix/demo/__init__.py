"""mpkix/demo."""
