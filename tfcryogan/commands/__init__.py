"""Command layer: turns parsed ``bin/`` flags into library calls and prints what was done."""
