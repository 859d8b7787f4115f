"""ca_node."""
