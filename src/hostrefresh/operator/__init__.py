"""operator component."""
