"""Datasets: rows found, checked and turned into tokenised prompts, before any model loads.

Modules:
- dataset: Datasets: find the rows, check them, and turn each into a tokenised prompt — before any model loads
- files: Data files checked before `datasets` reads them, because its own errors name neither file nor line
"""
