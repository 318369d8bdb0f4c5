"""Networks, their presets and weights loading."""
