using System.Runtime.InteropServices;

namespace Fed.Warehouse.Odbc;

/// <summary>
/// Raw P/Invoke declarations over the unixODBC driver manager (<c>libodbc.so.2</c>).
/// Only the narrow ("A") entry points are used: the SQLite3 driver implements no W functions,
/// and strings are passed as NUL-terminated UTF-8 bytes. On 64-bit unixODBC SQLINTEGER is 4 bytes,
/// SQLLEN/SQLULEN are 8 bytes (<see cref="nint"/>/<see cref="nuint"/>), handles are pointers.
/// </summary>
internal static unsafe partial class OdbcNative
{
    private const string Lib = "libodbc.so.2";

    // Return codes
    public const short SQL_SUCCESS = 0;
    public const short SQL_SUCCESS_WITH_INFO = 1;
    public const short SQL_NEED_DATA = 99;
    public const short SQL_NO_DATA = 100;
    public const short SQL_ERROR = -1;
    public const short SQL_INVALID_HANDLE = -2;

    // Handle types
    public const short SQL_HANDLE_ENV = 1;
    public const short SQL_HANDLE_DBC = 2;
    public const short SQL_HANDLE_STMT = 3;

    // Attributes
    public const int SQL_ATTR_ODBC_VERSION = 200;
    public const int SQL_OV_ODBC3 = 3;
    public const int SQL_ATTR_AUTOCOMMIT = 102;
    public const int SQL_AUTOCOMMIT_OFF = 0;
    public const int SQL_AUTOCOMMIT_ON = 1;
    public const int SQL_IS_UINTEGER = -5;

    // SQLEndTran
    public const short SQL_COMMIT = 0;
    public const short SQL_ROLLBACK = 1;

    // SQLDriverConnect
    public const ushort SQL_DRIVER_NOPROMPT = 0;

    // SQLFreeStmt options
    public const ushort SQL_CLOSE = 0;
    public const ushort SQL_UNBIND = 2;
    public const ushort SQL_RESET_PARAMS = 3;

    // Lengths / indicators
    public const int SQL_NTS = -3;
    public const nint SQL_NULL_DATA = -1;
    public const nint SQL_NO_TOTAL = -4;

    // Parameter direction
    public const short SQL_PARAM_INPUT = 1;

    // C data types
    public const short SQL_C_CHAR = 1;
    public const short SQL_C_SLONG = -16;     // SQL_INTEGER + SQL_SIGNED_OFFSET
    public const short SQL_C_SBIGINT = -25;   // SQL_BIGINT + SQL_SIGNED_OFFSET
    public const short SQL_C_DOUBLE = 8;
    public const short SQL_C_BIT = -7;
    public const short SQL_C_BINARY = -2;

    // SQL data types
    public const short SQL_CHAR = 1;
    public const short SQL_NUMERIC = 2;
    public const short SQL_DECIMAL = 3;
    public const short SQL_INTEGER = 4;
    public const short SQL_SMALLINT = 5;
    public const short SQL_FLOAT = 6;
    public const short SQL_REAL = 7;
    public const short SQL_DOUBLE = 8;
    public const short SQL_VARCHAR = 12;
    public const short SQL_LONGVARCHAR = -1;
    public const short SQL_BINARY = -2;
    public const short SQL_VARBINARY = -3;
    public const short SQL_LONGVARBINARY = -4;
    public const short SQL_BIGINT = -5;
    public const short SQL_TINYINT = -6;
    public const short SQL_BIT = -7;

    public static bool Succeeded(short rc) => rc == SQL_SUCCESS || rc == SQL_SUCCESS_WITH_INFO;

    [LibraryImport(Lib)]
    public static partial short SQLAllocHandle(short handleType, nint inputHandle, out nint outputHandle);

    [LibraryImport(Lib)]
    public static partial short SQLFreeHandle(short handleType, nint handle);

    [LibraryImport(Lib)]
    public static partial short SQLSetEnvAttr(nint env, int attribute, nint value, int stringLength);

    [LibraryImport(Lib)]
    public static partial short SQLDriverConnect(
        nint dbc, nint windowHandle,
        byte* inConnectionString, short inLength,
        byte* outConnectionString, short outBufferLength, short* outLength,
        ushort driverCompletion);

    [LibraryImport(Lib)]
    public static partial short SQLSetConnectAttr(nint dbc, int attribute, nint value, int stringLength);

    [LibraryImport(Lib)]
    public static partial short SQLEndTran(short handleType, nint handle, short completionType);

    [LibraryImport(Lib)]
    public static partial short SQLDisconnect(nint dbc);

    [LibraryImport(Lib)]
    public static partial short SQLExecDirect(nint stmt, byte* statementText, int textLength);

    [LibraryImport(Lib)]
    public static partial short SQLPrepare(nint stmt, byte* statementText, int textLength);

    [LibraryImport(Lib)]
    public static partial short SQLExecute(nint stmt);

    [LibraryImport(Lib)]
    public static partial short SQLBindParameter(
        nint stmt, ushort parameterNumber, short inputOutputType,
        short valueType, short parameterType, nuint columnSize, short decimalDigits,
        void* parameterValue, nint bufferLength, nint* strLenOrInd);

    [LibraryImport(Lib)]
    public static partial short SQLNumResultCols(nint stmt, short* columnCount);

    [LibraryImport(Lib)]
    public static partial short SQLDescribeCol(
        nint stmt, ushort columnNumber,
        byte* columnName, short bufferLength, short* nameLength,
        short* dataType, nuint* columnSize, short* decimalDigits, short* nullable);

    [LibraryImport(Lib)]
    public static partial short SQLFetch(nint stmt);

    [LibraryImport(Lib)]
    public static partial short SQLGetData(
        nint stmt, ushort columnNumber, short targetType,
        void* targetValue, nint bufferLength, nint* strLenOrInd);

    [LibraryImport(Lib)]
    public static partial short SQLRowCount(nint stmt, nint* rowCount);

    [LibraryImport(Lib)]
    public static partial short SQLGetDiagRec(
        short handleType, nint handle, short recNumber,
        byte* sqlState, int* nativeError,
        byte* messageText, short bufferLength, short* textLength);

    [LibraryImport(Lib)]
    public static partial short SQLCloseCursor(nint stmt);

    [LibraryImport(Lib)]
    public static partial short SQLFreeStmt(nint stmt, ushort option);
}
