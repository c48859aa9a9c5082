"""The YAML config file: validation, diff against the live config, atomic import, export."""
