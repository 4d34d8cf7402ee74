SELECT
  facility_code,
  CAST(event_time AS DATE) AS event_date,
  event_type,
  COUNT(*) AS messages
FROM silver.adt_messages
GROUP BY facility_code, CAST(event_time AS DATE), event_type
