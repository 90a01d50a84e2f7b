"""Vector indexes: item ids and vectors in, nearest item ids out."""
