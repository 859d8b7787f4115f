"""cms_node."""
