ALTER TABLE `jobs` ADD `trained_tokens` integer;--> statement-breakpoint
ALTER TABLE `jobs` ADD `result_files` text DEFAULT '[]' NOT NULL;