CREATE TABLE `request_windows` (
	`tenant_id` text NOT NULL,
	`window_start` integer NOT NULL,
	`requests` integer NOT NULL,
	PRIMARY KEY(`tenant_id`, `window_start`),
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `sample_reservations` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`samples` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `sample_reservations_tenant_idx` ON `sample_reservations` (`tenant_id`,`expires_at`);--> statement-breakpoint
ALTER TABLE `tenants` ADD `last_claim_seq` integer;--> statement-breakpoint
CREATE INDEX `jobs_tenant_status_idx` ON `jobs` (`tenant_id`,`status`);