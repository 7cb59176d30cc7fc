"""Packing graph neighbours into training examples in NSL's NL_nbr_ format."""
