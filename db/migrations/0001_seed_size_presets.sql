-- Size presets are data; these rows mirror SIZE_PRESETS in lib/presets.ts (test/catalog.test.ts checks they agree).
INSERT INTO "size_presets" ("key", "vcpus", "memory_mib") VALUES
	('small', 1, 2048),
	('medium', 2, 4096),
	('large', 4, 8192)
ON CONFLICT ("key") DO NOTHING;
