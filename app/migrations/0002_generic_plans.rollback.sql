DO $$
BEGIN
  EXECUTE format('ALTER DATABASE %I RESET plan_cache_mode', current_database());
END
$$;
