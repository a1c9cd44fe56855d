\timing on
BEGIN;
SET search_path TO kaudit_big, public;
\i /work/main/crates/kaudit-store-postgres/migrations/0004_bounded_index_keys.sql
ROLLBACK;
