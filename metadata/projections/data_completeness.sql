-- completeness: the average, over the listed optional columns, of the share of rows filled.
WITH filled AS (
  SELECT _facility_id AS facility_id, _arrival_date AS arrival_date, 'adt_messages' AS table_name,
    CASE WHEN patient_class IS NULL THEN 0.0 ELSE 1.0 END AS filled
  FROM silver.adt_messages
  UNION ALL
  SELECT _facility_id, _arrival_date, 'visits',
    ((CASE WHEN unit IS NULL THEN 0.0 ELSE 1.0 END) + (CASE WHEN bed IS NULL THEN 0.0 ELSE 1.0 END)
      + (CASE WHEN admit_time IS NULL THEN 0.0 ELSE 1.0 END)) / 3
  FROM silver.visits
  UNION ALL
  SELECT _facility_id, _arrival_date, 'lab_results',
    ((CASE WHEN value IS NULL THEN 0.0 ELSE 1.0 END) + (CASE WHEN unit IS NULL THEN 0.0 ELSE 1.0 END)
      + (CASE WHEN abnormal_flag IS NULL THEN 0.0 ELSE 1.0 END)) / 3
  FROM silver.lab_results
  UNION ALL
  SELECT _facility_id, _arrival_date, 'encounters',
    ((CASE WHEN encounter_type IS NULL THEN 0.0 ELSE 1.0 END)
      + (CASE WHEN postal_code IS NULL THEN 0.0 ELSE 1.0 END)
      + (CASE WHEN age IS NULL THEN 0.0 ELSE 1.0 END)) / 3
  FROM silver.encounters
  UNION ALL
  SELECT _facility_id, _arrival_date, 'bed_census',
    ((CASE WHEN bed_type IS NULL THEN 0.0 ELSE 1.0 END)
      + (CASE WHEN licensed IS NULL THEN 0.0 ELSE 1.0 END)) / 2
  FROM silver.bed_census
)
SELECT
  facility_id,
  arrival_date,
  table_name,
  COUNT(*) AS row_count,
  ROUND(AVG(filled), 4) AS completeness
FROM filled
GROUP BY facility_id, arrival_date, table_name
