"""Build, check and publish the f7t4jhub images (logic behind noxfile.py)."""
