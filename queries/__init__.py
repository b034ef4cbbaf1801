"""SQL views and canned reports over an rtreplay archive (one `.sql` file each, beside this module)."""
