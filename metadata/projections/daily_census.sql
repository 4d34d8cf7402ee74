WITH last_snapshot AS (
  SELECT facility_code, CAST(snapshot_time AS DATE) AS census_date, MAX(snapshot_time) AS snapshot_time
  FROM silver.bed_census
  GROUP BY facility_code, CAST(snapshot_time AS DATE)
)
SELECT
  c.facility_code,
  l.census_date,
  COUNT(*) AS beds,
  SUM(CASE WHEN c.status = 'occupied' THEN 1 ELSE 0 END) AS occupied_beds,
  ROUND(SUM(CASE WHEN c.status = 'occupied' THEN 1 ELSE 0 END) / COUNT(*), 4) AS occupancy
FROM silver.bed_census AS c
JOIN last_snapshot AS l
  ON c.facility_code = l.facility_code AND c.snapshot_time = l.snapshot_time
GROUP BY c.facility_code, l.census_date
