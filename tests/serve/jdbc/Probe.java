// A pgjdbc client for tests/serve/test_endpoint.py: lists the gold tables through
// DatabaseMetaData and runs one prepared statement seven times, past pgjdbc's prepareThreshold
// of 5, after which it asks for binary results.
import java.sql.*;
public class Probe {
    public static void main(String[] a) throws Exception {
        try (Connection c = DriverManager.getConnection(a[0], a[1], a[2])) {
            DatabaseMetaData md = c.getMetaData();
            try (ResultSet rs = md.getTables(null, "gold", "%", new String[]{"TABLE"})) {
                while (rs.next()) System.out.println("table " + rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME"));
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT facility_code, COUNT(*) AS n FROM silver.visits WHERE unit = ? GROUP BY 1 ORDER BY 1")) {
                for (int i = 0; i < 7; i++) {   // past pgjdbc's prepareThreshold of 5
                    ps.setString(1, "ICU");
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) if (i == 6) System.out.println("row " + rs.getString(1) + " " + rs.getLong(2));
                    }
                }
            }
        }
    }
}
