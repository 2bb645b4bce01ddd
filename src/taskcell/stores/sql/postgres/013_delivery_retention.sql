-- Retention removes webhook deliveries that ended (delivered or failed) once they are as old
-- as the events it removes: oldest first, through this partial index.
CREATE INDEX deliveries_ended ON webhook_deliveries (created_at)
    WHERE status IN ('delivered', 'failed');
