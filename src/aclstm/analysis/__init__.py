"""Analyses of the paper: complexity (Table 1)."""
