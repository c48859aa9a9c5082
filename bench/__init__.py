"""The benchmark (`make bench`) and the profile of its gateway_full scenario."""
