"""Ways to look at a plan before anything is removed: HTML report (more to come)."""
