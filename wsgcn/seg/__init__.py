"""What both stages compute with: the VOC data set, score archives, label maps from CAMs, seeded
crops, the confusion-matrix metric, the dense CRF and the affinity random walk."""
