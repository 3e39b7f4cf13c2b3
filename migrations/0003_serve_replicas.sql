CREATE TABLE `serve_replicas` (
	`id` text PRIMARY KEY NOT NULL,
	`url` text NOT NULL,
	`token` text NOT NULL,
	`api_origin` text NOT NULL,
	`load` integer NOT NULL,
	`capacity` integer NOT NULL,
	`models` text NOT NULL,
	`last_seen_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `serve_replicas_expires_idx` ON `serve_replicas` (`expires_at`);