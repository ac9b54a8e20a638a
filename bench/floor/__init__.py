"""The engine's floor: the resource graph of this project's design, with providers that do no work."""
