# Las frases que lee el personal, en español (ver en.ftl).

## Menús de arranque (ISOLINUX, GRUB, LILO): se muestran sin tildes.
menu-install = Instalar (borra este PC)
menu-inventory = Solo inventario (informa del hardware, no cambia nada)
menu-rescue = Consola de rescate
menu-local = Arrancar desde el disco local
menu-autoboot = Arranque automático en # segundo{"{"},s{"}"}...
menu-tabmsg = Pulse [Tab] para editar las opciones

## Las primeras líneas en pantalla.
banner-install = Este ordenador se está instalando. Puede dejarlo:
banner-install-2 = se reinicia solo cuando termina.
banner-inventory = Los datos de este ordenador se envían al servidor;
banner-inventory-2 = después se apaga solo.

## Los pasos, cada uno seguido de su resultado.
step-hardware = Buscando el hardware
step-network = Conectando a la red
step-looking = Examinando este ordenador
step-server = Contactando con el servidor de instalación { $server }
step-done = hecho
step-drivers = hecho ({ $count ->
    [one] { $count } controlador
   *[other] { $count } controladores
})
step-not-yet = todavía no
retry-in = Nuevo intento en { $secs ->
    [one] { $secs } segundo
   *[other] { $secs } segundos
}...
not-approved = El servidor de instalación aún no ha aceptado este ordenador: pida al voluntario que acepte los nuevos PC en el panel. Nueva consulta en 60 segundos.
fail-not-recognised = El servidor de instalación ya conoce un ordenador con esta identidad: pida al voluntario que deje inscribirse de nuevo a este PC en el panel.
fail-replayed = La respuesta del servidor de instalación no corresponde a la pregunta de este ordenador (¿una respuesta antigua repetida?): no se escribirá nada en los discos.
no-nic-driver = Este CD no tiene controlador para la tarjeta de red con identificador PCI { $id }.
details-sent = El servidor tiene los datos de este ordenador. Apagando.
disks-used = Los discos se usarán así:
countdown = Empieza en { $secs } s (apague el ordenador ahora para detenerlo)...
starting = Empezando.
technical-detail = Detalle técnico

## Lo que muestra la instalación mientras escribe el disco.
event-partition = Escribiendo las tablas de particiones
event-format = Creando los sistemas de archivos
event-download = Descargando y descomprimiendo el sistema
event-configure = Configurando el sistema instalado
event-installed = Instalado; reiniciando en el nuevo sistema

## Cuando el programa se detiene.
agent-finished = El programa de instalación ha terminado.
choices = Escriba una letra y pulse Intro:  r = reintentar   s = consola   b = reiniciar   p = apagar
no-shell = Este CD no tiene consola (falta /bin/sh).
shell-start = Abriendo una consola; escriba `exit` para volver.

## Fallos: una frase que el personal puede leer por teléfono.
fail-agent-start = El programa de instalación no pudo arrancar.
fail-agent-stopped = El programa de instalación se detuvo de forma inesperada.
fail-restart = No se pudo reiniciar.
fail-power-off = No se pudo apagar.
fail-power-off-switch = No se pudo apagar; puede apagar el ordenador.
fail-shell = La consola no arrancó.
fail-settings = Los ajustes de este CD son incorrectos; hay que rehacer el CD.
fail-network = Este ordenador no pudo conectarse a la red. Compruebe que el cable de red está enchufado.
fail-server = Este ordenador no pudo contactar con el servidor de instalación.
fail-kernel = Este CD no corresponde a su propio núcleo; hay que rehacer el CD.
fail-key = La clave del servidor en este CD está dañada; hay que rehacer el CD.
fail-refused = La respuesta del servidor de instalación no está firmada por el servidor de este CD: no se escribirá nada en los discos.
fail-not-pinned = El servidor que respondió no es el servidor de instalación de este CD (quizá algo en la red se interpone): no se escribirá nada en los discos.
fail-not-understood = El servidor de instalación envió una respuesta que este CD no entiende.
fail-other-computer = El servidor de instalación envió un plan para otro ordenador: no se escribirá nada.
fail-disks = Los discos de este ordenador no pueden contener el sistema elegido: no se escribió nada.
fail-install = La instalación no terminó. Este ordenador no arrancará el sistema a medio instalar; pida ayuda con el detalle de abajo.
fail-no-restart = Instalado, pero el ordenador no se reinició solo: retire el CD y reinícielo.
offline-no-server = No se puede contactar con el servidor de instalación: este ordenador se instala desde el CD o la memoria USB.

## Un PC ya instalado, arrancado otra vez desde un CD o una memoria olvidados.
installed-already = Este ordenador ya está instalado: no se escribirá nada en sus discos.
installed-cd = El CD sale y el ordenador se reinicia en su sistema instalado.
installed-usb = Retire la memoria USB: el ordenador se reiniciará en su sistema instalado.
installed-usb-off = La memoria USB sigue puesta: el ordenador se apaga. Retire la memoria y enciéndalo.

## El plan de los discos, mostrado antes de escribir nada.
plan-disk = Disco { $name } ({ $size })
plan-untouched = se queda como está
plan-erased = se BORRARÁ
plan-partly = reescrito en parte, sus archivos se conservan
plan-kept = conservado
plan-note = Nota: { $note }
why-boot-device = es el CD o la memoria de instalación
why-removable = soporte extraíble
why-excluded = excluido por el servidor
why-too-small = demasiado pequeño para ser útil
why-holds-home = carpeta personal con sus archivos
warn-insecure-cd = Este CD se hizo con lazare.insecure: no comprueba que el servidor de instalación sea el auténtico. Solo para pruebas.
fail-tls-setup = Este CD no puede establecer su conexión segura.
