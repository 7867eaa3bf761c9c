"""Packaging: container build contexts, image builders, model wheels and deploy kits."""
