"""The joint family: our own dual encoder with selectable towers and projection heads."""
