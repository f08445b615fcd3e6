"""From a frame and a template to keyed, deduplicated request lines."""
