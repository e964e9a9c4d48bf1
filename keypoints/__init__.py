"""keyface: keypoints."""
