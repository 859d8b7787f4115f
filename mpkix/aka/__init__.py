"""mpkix/aka."""
