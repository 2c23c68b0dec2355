"""Continual learning: exemplars, EWC, methods and the cycle loop."""
