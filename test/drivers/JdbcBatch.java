// A real JDBC (pgjdbc) client for test/integration/proxy-jdbc.test.ts: a batch with one bad
// row, then a query on the same connection; and a fetch-size cursor with statements between
// its chunks. Prints one JSON-ish line per result. Run: java -cp postgresql.jar JdbcBatch.java URL USER PASSWORD BASE N
import java.sql.*;

public class JdbcBatch {
  public static void main(String[] a) throws Exception {
    String url = a[0], user = a[1], password = a[2];
    int base = Integer.parseInt(a[3]), n = Integer.parseInt(a[4]);
    try (Connection c = DriverManager.getConnection(url, user, password)) {
      // 1. A batch whose 4th row repeats the first id: the batch fails, the connection lives.
      try (PreparedStatement ps = c.prepareStatement("INSERT INTO t (id, v) VALUES (?, ?)")) {
        for (int i = 0; i < n; i++) {
          ps.setInt(1, i == 3 ? base : base + i);
          ps.setString(2, "v" + i);
          ps.addBatch();
        }
        try {
          ps.executeBatch();
          System.out.println("batch ok");
        } catch (BatchUpdateException e) {
          SQLException next = e.getNextException();
          System.out.println("batch failed " + (next != null ? next.getSQLState() : e.getSQLState()));
        }
      }
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 41 + 1")) {
        rs.next();
        System.out.println("after " + rs.getInt(1));
      }
      // 2. A cursor read in chunks of 2 (a named portal, Execute with max rows), a statement between chunks.
      c.setAutoCommit(false);
      try (Statement s = c.createStatement()) {
        s.setFetchSize(2);
        try (ResultSet rs = s.executeQuery("SELECT id, email FROM customers ORDER BY id")) {
          int k = 0;
          while (rs.next()) {
            System.out.println("row " + rs.getInt(1) + " " + rs.getString(2));
            if (++k == 2) {
              try (Statement o = c.createStatement(); ResultSet r2 = o.executeQuery("SELECT 7")) {
                r2.next();
                System.out.println("between " + r2.getInt(1));
              }
            }
          }
        }
      }
      c.commit();
      System.out.println("done");
    }
  }
}
