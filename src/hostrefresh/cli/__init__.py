"""``kubectl hostrefresh``: a kubectl plugin to start, watch and abort refreshes."""
