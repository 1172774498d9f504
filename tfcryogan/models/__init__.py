"""Keras models: the critic, the volume/conformation generator, symmetry."""
