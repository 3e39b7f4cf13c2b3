CREATE TABLE `tenant_models` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`status` text NOT NULL,
	`files` text NOT NULL,
	`bytes` integer NOT NULL,
	`blob_prefix` text NOT NULL,
	`manifest` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `tenant_models_tenant_idx` ON `tenant_models` (`tenant_id`);