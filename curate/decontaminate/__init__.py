"""Decontamination: remove (or cut) training text that shares word n-grams with evaluation sets."""
