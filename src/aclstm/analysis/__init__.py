"""Analyses of the paper: complexity (Table 1), run reports, visualisation (Fig. 3)."""
