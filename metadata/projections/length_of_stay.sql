-- Encounters discharged on a day; a corrected document replaces the earlier one in silver.
SELECT
  facility_code,
  CAST(discharge_time AS DATE) AS discharge_date,
  encounter_type,
  COUNT(*) AS discharges,
  ROUND(AVG((unix_timestamp(discharge_time) - unix_timestamp(admit_time)) / 86400.0), 3)
    AS avg_length_of_stay_days,
  ROUND(MAX((unix_timestamp(discharge_time) - unix_timestamp(admit_time)) / 86400.0), 3)
    AS max_length_of_stay_days
FROM silver.encounters
WHERE discharge_time IS NOT NULL AND discharge_time >= admit_time
GROUP BY facility_code, CAST(discharge_time AS DATE), encounter_type
