"""Evaluation: FSC, alignment of maps up to rotation/reflection/shift, resolution, plots."""
