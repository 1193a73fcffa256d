"""Where training and evaluation data come from: the dataset format, its reader and checks, and the
tools that make datasets (the toy renderer; importers and caches as they are added)."""
