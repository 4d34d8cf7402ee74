-- Current results only (silver keeps the latest correction); minutes from collection to result.
WITH timed AS (
  SELECT
    facility_code,
    CAST(resulted_at AS DATE) AS result_date,
    test_code,
    status,
    (unix_timestamp(resulted_at) - unix_timestamp(collected_at)) / 60.0 AS minutes
  FROM silver.lab_results
  WHERE resulted_at >= collected_at
)
SELECT
  facility_code,
  result_date,
  test_code,
  COUNT(*) AS results,
  SUM(CASE WHEN status = 'C' THEN 1 ELSE 0 END) AS corrected,
  ROUND(AVG(minutes), 1) AS avg_minutes,
  ROUND(percentile_approx(minutes, 0.5), 1) AS median_minutes,
  ROUND(percentile_approx(minutes, 0.9), 1) AS p90_minutes
FROM timed
GROUP BY facility_code, result_date, test_code
